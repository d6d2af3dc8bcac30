export type UserStatus = 'active' | 'disabled';

export interface UserRecord {
  id: string;
  username: string;
  passwordHash: string;
  status: UserStatus;
  homeRegion: string;
  createdAt: Date;
  updatedAt: Date;
  passwordChangedAt: Date;
  version: number;
}
